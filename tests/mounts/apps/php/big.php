<?php
// 1 GiB (or ?mib=N MiB), written a MiB at a time.
header("Content-Type: application/octet-stream");
$chunk = str_repeat("0123456789abcdef", 65536);
$n = intval($_GET["mib"] ?? "1024");
for ($i = 0; $i < $n; $i++) {
    echo $chunk;
    flush();
}
