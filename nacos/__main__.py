import sys

from nacos.cli import main

sys.exit(main())
