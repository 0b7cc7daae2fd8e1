from rotor_lite.cli import main

main()
