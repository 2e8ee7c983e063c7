#!/bin/sh
# Asks the database (the service named db) for its greeting.
echo "Content-Type: text/plain"
echo
echo "$(cat /www/title): $(nc db 5000)"
