from rewardkit.label.cli import main

raise SystemExit(main())
