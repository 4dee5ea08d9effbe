"""The running device: one school's Ketang appliance.

Layout (each package's ``__init__`` says what it owns and must not import):

- :mod:`appliance.device`: the one place that starts and stops the services, in order;
- :mod:`appliance.web`: the Flask app factory, blueprints and views (only it imports Flask);
- :mod:`appliance.cli`: the ``ketang`` command;
- :mod:`appliance.usage`, :mod:`appliance.sync`, :mod:`appliance.drives`: the services;
- at the top, what every part shares: :mod:`.config`, :mod:`.health`, :mod:`.identity`,
  :mod:`.discovery`, :mod:`.server`, :mod:`.auth` (the technician's password),
  :mod:`.text` (numbers a person reads), :mod:`.words` (state codes in words, through
  gettext), :mod:`.addresses` (this machine's addresses and names). These import none
  of the packages.

Rules: renders no HTML itself (``kiosk_ui`` does); no module reaches another's private
names; the packages form no import cycle (``tests/test_architecture.py`` checks all three).
"""
