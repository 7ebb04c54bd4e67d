from pointsam.cli import main

raise SystemExit(main())
