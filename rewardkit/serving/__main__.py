from rewardkit.serving.cli import main

raise SystemExit(main())
