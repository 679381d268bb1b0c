"""An iCalendar (RFC 5545) file for a workshop: one all-day event over its dates."""

from __future__ import annotations

from datetime import timedelta

from portal.clock import utcnow


def _escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (without splitting a character)."""
    out, current = [], b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def workshop_ics(workshop, title: str, description: str, uid_domain: str = "integplan.portal") -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Micado Migration//IntegPlan portal//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:workshop-{workshop.id}@{uid_domain}",
        f"DTSTAMP:{utcnow().strftime('%Y%m%dT%H%M%SZ')}",
        f"DTSTART;VALUE=DATE:{workshop.starts_on.strftime('%Y%m%d')}",
        # DTEND of an all-day event is exclusive: the day after the last day.
        f"DTEND;VALUE=DATE:{(workshop.ends_on + timedelta(days=1)).strftime('%Y%m%d')}",
        f"SUMMARY:{_escape(title)}",
        f"LOCATION:{_escape(f'{workshop.venue}, {workshop.city}')}",
        f"DESCRIPTION:{_escape(description)}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return ("\r\n".join(_fold(line) for line in lines) + "\r\n").encode()
