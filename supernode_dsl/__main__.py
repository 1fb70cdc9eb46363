from supernode_dsl.cli import console

console()
