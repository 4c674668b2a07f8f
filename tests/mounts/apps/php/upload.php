<?php
// A multipart upload: the file's size and digest as PHP received it.
header("Content-Type: text/plain");
$f = $_FILES["f"];
echo $f["error"], " ", $f["size"], " ", hash_file("sha256", $f["tmp_name"]);
