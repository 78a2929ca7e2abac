from bulkcall.cli import main

main()
