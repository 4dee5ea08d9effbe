"""Classes: a teacher's classes, what each has been taught, and live class answers.

Owns: the classes database (:mod:`.store`: its own SQLite file, WAL, each change one
transaction; grade, class name, subject, textbook edition, never a student's name),
progress (:mod:`.progress`: a lesson counts as taught for a class when every part of it
was projected for that class, as the projector's usage events say, or when the teacher
marks it; the next lesson in curriculum order) and live class answers
(:mod:`.answers`: one anonymous answer per tablet per question, stored as usage events,
tallied for the projector).

Rules: must not import Flask, ``appliance.web``, ``appliance.cli``, ``appliance.sync``
or ``appliance.drives``; it reads and writes usage events only through
``appliance.usage``'s public classes, and gives codes and numbers (the views and the
CLI turn them into words).
"""
