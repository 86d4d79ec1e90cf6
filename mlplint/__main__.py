from mlplint.cli import main

main()
