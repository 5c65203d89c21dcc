#!/bin/sh
# busybox httpd runs /cgi-bin/index.cgi for "/" when there is no index.html
printf 'Content-Type: text/html\r\n\r\n'
printf '<h3>Hello %s!</h3><b>Hostname:</b> %s<br/>\n' "${NAME:-world}" "$(hostname)"
