chmod 750 app/data
