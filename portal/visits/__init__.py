"""Reintegration visits: partners record what they see on a case, staff follow up.

models.py (visits, drafts, comments, photos), forms.py (the visit form and the RSS score descriptors),
services.py (rules, drafts, follow-up mail, overdue list, timeline, trend), views.py (routes),
cli.py (`flask --app portal visits digest`).
"""
