<?php
header("Content-Type: text/plain");
header("X-Sendfile: " . $_GET["f"]);
echo "never sent";
