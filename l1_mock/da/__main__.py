"""``python -m l1_mock.da``: runs the DA mock's command line (also the ``da-mock`` script)."""

from l1_mock.da.cli import main

if __name__ == "__main__":
    main()
