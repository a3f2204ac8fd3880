#!/bin/sh
# Prints the greeting; the tests and the deploy check look for it.
echo "${GREETING:-Hello from drydock}!"
