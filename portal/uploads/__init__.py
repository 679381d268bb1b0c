"""Resumable uploads (tus 1.0: core, creation, termination, expiration) for receipt files, handover proofs
and visit photos. A finished upload is checked like any other file and then waits, by its opaque token,
for the form that claims it."""
