from supernode_dsl.cli import main

main()
