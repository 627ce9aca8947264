"""Allow `python -m photostream`."""

from photostream.cli import main

main()
