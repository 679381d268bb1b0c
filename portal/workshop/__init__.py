"""The advisor exchange workshop: public registration with double opt-in, waitlist, staff management."""
