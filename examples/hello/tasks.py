"""A user's tasks.py: the whole cri-tasks collection at the top level (`invoke prepare`)."""

from cri_tasks import collection

ns = collection()
