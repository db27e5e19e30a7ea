"""Date, time and number formats per portal language (``FORMAT_MODULE_PATH``).

French keeps the guide's formats exactly (``25/11/2026 22:14``); German follows DIN 5008
(``25.11.2026 22:14``); English spells the month (``25 Nov 2026, 22:14``) so that no reader has
to guess whether 03/04 is March or April on a birth date or a prescription. Times are 24-hour
everywhere, as on prescriptions. Templates use the names (``SHORT_DATE_FORMAT``,
``SHORT_DATETIME_FORMAT``), never a literal format.
"""
