from emotion_service.cli import main

raise SystemExit(main())
