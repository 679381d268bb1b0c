"""Decision and comment notifications: written with the decision, mailed as one digest per user and hour."""
