from xraystudio.cli import main

raise SystemExit(main())
