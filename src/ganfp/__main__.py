from ganfp.cli import main

main()
