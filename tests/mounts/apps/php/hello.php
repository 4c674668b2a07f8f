<?php
header("Content-Type: text/plain");
echo "hello from php ", $_SERVER["SCRIPT_NAME"], " [", $_SERVER["PATH_INFO"] ?? "", "] ", $_SERVER["QUERY_STRING"];
