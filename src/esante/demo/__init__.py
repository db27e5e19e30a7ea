"""The top of the stack: the commands that run the platform (``esante serve``) and its demonstration
(``esante demo``), with the demo loader. Nothing imports this app; it may import every other."""
