"""Step kinds: ``table.STEPS`` lists every kind with its rules, its run and its dry-run
description; ``base`` holds what they share; the families (``kubernetes/``, ``http``,
``metrics``, ``control``) hold the functions."""
