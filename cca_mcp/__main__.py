from cca_mcp.main import main

main()
