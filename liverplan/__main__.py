from liverplan.cli import main

raise SystemExit(main())
