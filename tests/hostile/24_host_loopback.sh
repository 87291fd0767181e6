# expect: network
# what: bash /dev/tcp to the host's loopback service
exec 3<>"/dev/tcp/127.0.0.1/${ROTE_HOST_PORT}" && echo "ESCAPED: bash connected to the host"
