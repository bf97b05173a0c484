from quintupleo.cli import main

main()
