"""The staff review desk: one queue of everything waiting for staff, inline decisions, sample audits.

models.py (sample draws and their items), services.py (the queue, counts, sample draws and checks),
views.py (routes under /review/), cli.py (`flask --app portal review sample`).
"""
