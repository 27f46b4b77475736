"""``python -m crew_durable``: the ``crew-durable`` command line (see ``crew_durable.cli``)."""

from crew_durable.cli import main

main()
