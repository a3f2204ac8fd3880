mkdir -p bundle/bin && echo run > bundle/bin/run && chmod 755 bundle/bin/run && tar -cf bundle.tar bundle && rm -rf bundle
