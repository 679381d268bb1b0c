"""Reports: the budget dashboard (charts.py draws its SVG bars), the funder's Belegliste as XLSX/CSV
(exports.py), the narrative report's figures, and the audit log viewer with its CSV export."""
