<?php
usleep(300000);
echo "slow";
