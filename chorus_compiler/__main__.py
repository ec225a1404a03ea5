import sys

from chorus_compiler.compiler import main

sys.exit(main())
