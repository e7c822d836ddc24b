from bench.resilience.run import main

main()
