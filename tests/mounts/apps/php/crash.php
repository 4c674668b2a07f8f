<?php
// The worker process dies in the middle of the request.
posix_kill(getmypid(), 9);
