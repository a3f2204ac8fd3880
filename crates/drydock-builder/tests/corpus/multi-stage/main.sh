#!/bin/sh
echo built by main.sh
