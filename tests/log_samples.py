# ruff: noqa: E501, W291 - real log lines are long, and some end in a space
"""Real Redis log lines, by version, for the parser and event-rule tests.

Where a published log showed the exact lines (operators' posts and docs quoting their
``redis.log``: a 3.2 cluster failover and crash, 2.4/2.8 replication, 4.0 master-side SYNC
errors and fork failures, 5.0 replication, a 6.0 sentinel promotion, 7.2 starts and
shutdowns through the signal handler), they are copied as they were, prefix and all (only
masked IPs filled in). The lines around them, and rarer messages (a slow AOF fsync, an
OOM, an assertion), use the exact text of Redis's sources (``serverLog`` format strings,
filled in) under the prefix of a version that writes them. Keep it that way: a test line
must be a line Redis can write.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

# --- Redis 1.x: "DD Mon HH:MM:SS L msg", no pid -----------------------------------------------
V1_START = """\
13 Nov 10:56:28 * Server started, Redis version 1.2.6
13 Nov 10:56:28 * The server is now ready to accept connections on port 6379
13 Nov 10:56:31 - 0 clients connected (0 slaves), 533432 bytes in use
13 Nov 10:56:36 . DB 0: 1 keys (0 volatile) in 4 slots HT.
"""

# --- Redis 2.4: "[pid] DD Mon HH:MM:SS L msg", no milliseconds (master side of a SYNC) --------
V24_MASTER_SYNC = """\
[11523] 06 Jan 13:56:58 * Slave ask for synchronization
[11523] 06 Jan 13:56:58 * Starting BGSAVE for SYNC
[11523] 06 Jan 13:56:58 * Background saving started by pid 22855
[22855] 06 Jan 13:58:31 * DB saved on disk
[11523] 06 Jan 13:58:31 * Background saving terminated with success
[11523] 06 Jan 13:58:47 * Synchronization with slave succeeded
"""

# --- Redis 2.6: a sentinel's view and a crash report written as records ----------------------
V26_SENTINEL = """\
[6666] 16 Nov 05:54:43.691 # +sdown slave 172.10.43.47:6379 172.10.43.47 6379 @ mymaster 172.10.43.42 6379
"""
V26_CRASH = """\
[2503] 12 Mar 10:00:00.100 * 1 changes in 900 seconds. Saving...
[2503] 12 Mar 10:00:01.001 # === REDIS BUG REPORT START: Cut & paste starting from here ===
[2503] 12 Mar 10:00:01.001 #     Redis 2.6.16 crashed by signal: 11
[2503] 12 Mar 10:00:01.001 #     Failed assertion: <no assertion failed> (<no file>:0)
[2503] 12 Mar 10:00:01.001 # --- STACK TRACE
/usr/local/bin/redis-server 127.0.0.1:6379(logStackTrace+0x3e)[0x443b3e]
/usr/local/bin/redis-server 127.0.0.1:6379(debugCommand+0x230)[0x45d080]
[2503] 12 Mar 10:00:01.002 # --- INFO OUTPUT
"""

# --- Redis 2.8: replica side of a full sync ----------------------------------------------------
V28_REPLICA_SYNC = """\
[4611] 24 Aug 19:11:46.843 * Connecting to MASTER 10.0.0.1:6379
[4611] 24 Aug 19:11:46.843 * MASTER <-> SLAVE sync started
[4611] 24 Aug 19:11:46.844 * Non blocking connect for SYNC fired the event.
[4611] 24 Aug 19:11:46.844 * Master replied to PING, replication can continue...
[4611] 24 Aug 19:11:46.844 * Partial resynchronization not possible (no cached master)
[4611] 24 Aug 19:11:46.844 * Full resync from master: 0629e2e6e79c13c21ff38b638b6009183140939a:1
[4611] 24 Aug 19:13:55.662 * MASTER <-> SLAVE sync: receiving 5774276835 bytes from master
[4611] 24 Aug 19:14:45.578 * MASTER <-> SLAVE sync: Flushing old data
[4611] 24 Aug 19:16:57.509 * MASTER <-> SLAVE sync: Loading DB in memory
[4611] 24 Aug 19:19:44.191 * MASTER <-> SLAVE sync: Finished with success
"""
V28_SIGNAL = """\
[11633 | signal handler] (1479710114) Received SIGTERM, scheduling shutdown...
[11633] 21 Nov 06:35:14.648 # User requested shutdown...
[11633] 21 Nov 06:35:14.648 * Saving the final RDB snapshot before exiting.
[11633] 21 Nov 06:35:14.700 * DB saved on disk
[11633] 21 Nov 06:35:14.700 # Redis is now ready to exit, bye bye...
"""

# --- Redis 3.2: pid:role, no year; the ASCII-art banner; a cluster failover; a crash -------------
V32_START = r"""1:M 29 Aug 06:53:41.953 * Increased maximum number of open files to 10032 (it was originally set to 1024).
                _._
           _.-``__ ''-._
      _.-``    `.  `_.  ''-._           Redis 3.2.12 (00000000/0) 64 bit
  .-`` .-```.  ```\/    _.,_ ''-._
 (    '      ,       .-`  | `,    )     Running in standalone mode
 |`-._`-...-` __...-.``-._|'` _.-'|     Port: 6379
 |    `-._   `._    /     _.-'    |     PID: 1
  `-._    `-._  `-./  _.-'    _.-'
 |`-._`-._    `-.__.-'    _.-'_.-'|
 |    `-._`-._        _.-'_.-'    |           http://redis.io
  `-._    `-._`-.__.-'_.-'    _.-'
      `-._    `-.__.-'    _.-'
          `-._        _.-'
              `-.__.-'

1:M 29 Aug 06:53:41.955 # WARNING: The TCP backlog setting of 511 cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of 128.
1:M 29 Aug 06:53:41.955 # Server started, Redis version 3.2.12
1:M 29 Aug 06:53:41.955 # WARNING you have Transparent Huge Pages (THP) support enabled in your kernel. This will create latency and memory usage issues with Redis. To fix this issue run the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled' as root, and add it to your /etc/rc.local in order to retain the setting after a reboot. Redis must be restarted after THP is disabled.
1:M 29 Aug 06:53:41.955 * The server is now ready to accept connections on port 6379
"""

#: The replica 127.0.0.1:7005 (pid 13747) while its master 7002 crashed and it took over.
V32_FAILOVER_REPLICA = """\
13747:S 07 Sep 11:25:38.271 # Connection with master lost.
13747:S 07 Sep 11:25:38.271 * Caching the disconnected master state.
13747:S 07 Sep 11:25:38.425 * Connecting to MASTER 127.0.0.1:7002
13747:S 07 Sep 11:25:38.425 * MASTER <-> SLAVE sync started
13747:S 07 Sep 11:25:38.425 # Error condition on socket for SYNC: Connection refused
13747:S 07 Sep 11:25:39.436 * Connecting to MASTER 127.0.0.1:7002
13747:S 07 Sep 11:25:39.436 * MASTER <-> SLAVE sync started
13747:S 07 Sep 11:25:39.436 # Error condition on socket for SYNC: Connection refused
13747:S 07 Sep 11:25:44.404 * FAIL message received from 10ac24757328c02a4a271edec5466f189c4db4c1 about 9bfa5f4cb76442048aff5accd6b1cc58040d078e
13747:S 07 Sep 11:25:44.404 # Cluster state changed: fail
13747:S 07 Sep 11:25:44.477 * Connecting to MASTER 127.0.0.1:7002
13747:S 07 Sep 11:25:44.477 * MASTER <-> SLAVE sync started
13747:S 07 Sep 11:25:44.477 # Start of election delayed for 821 milliseconds (rank #0, offset 5315960).
13747:S 07 Sep 11:25:44.477 # Error condition on socket for SYNC: Connection refused
13747:S 07 Sep 11:25:45.384 # Starting a failover election for epoch 8.
13747:S 07 Sep 11:25:45.386 # Failover election won: I'm the new master.
13747:S 07 Sep 11:25:45.386 # configEpoch set to 8 after successful failover
13747:M 07 Sep 11:25:45.386 * Discarding previously cached master state.
13747:M 07 Sep 11:25:45.386 # Cluster state changed: ok
"""

#: Two other masters of that cluster (pids 13719, 13727) in the same seconds.
V32_FAILOVER_PEERS = """\
13719:M 07 Sep 11:25:44.404 * Marking node 9bfa5f4cb76442048aff5accd6b1cc58040d078e as failing (quorum reached).
13719:M 07 Sep 11:25:44.404 # Cluster state changed: fail
13719:M 07 Sep 11:25:45.386 # Failover auth granted to edfbcf234110669ba74cd222da26985712470913 for epoch 8
13719:M 07 Sep 11:25:45.427 # Cluster state changed: ok
"""

#: The crashed master 7002 (pid 13738): the report as 3.2 writes it, raw lines and all.
V32_CRASH = """\
13738:M 07 Sep 11:25:30.000 * Background saving terminated with success


=== REDIS BUG REPORT START: Cut & paste starting from here ===
13738:M 07 Sep 11:25:38.135 # Redis 3.2.3 crashed by signal: 11
13738:M 07 Sep 11:25:38.135 # Crashed running the instuction at: 0x45d080
13738:M 07 Sep 11:25:38.135 # Accessing address: 0xffffffffffffffff
13738:M 07 Sep 11:25:38.135 # Failed assertion: <no assertion failed> (<no file>:0)

------ STACK TRACE ------
EIP:
./redis-server *:7002 [cluster](debugCommand+0x230)[0x45d080]

Backtrace:
./redis-server *:7002 [cluster](logStackTrace+0x3c)[0x45bd5c]
./redis-server *:7002 [cluster](sigsegvHandler+0xa1)[0x45cc41]

------ INFO OUTPUT ------
# Server
redis_version:3.2.3
role:master
connected_slaves:1

------ REGISTERS ------
13738:M 07 Sep 11:25:38.159 # 
RAX:0000000000000000 RBX:00007fc159bb2d80
13738:M 07 Sep 11:25:38.159 # (00007fffa9dd1baf) -> 0000000000000000

------ FAST MEMORY TEST ------
13738:M 07 Sep 11:25:38.160 # Bio thread for job type #0 terminated
13738:M 07 Sep 11:25:38.160 # Bio thread for job type #1 terminated
*** Preparing to test memory region 721000 (94208 bytes)
.O.O.O.O.O.O.O.O.O.O.O
Fast memory test PASSED, however your memory can still be broken. Please run a memory test for several hours if possible.
=== REDIS BUG REPORT END. Make sure to include from START to END. ===

       Please report the crash by opening an issue on github:

           http://github.com/antirez/redis/issues

  Suspect RAM error? Use redis-server --test-memory to verify it.

"""

# --- Redis 3.x/4.0: a master whose BGSAVE for SYNC failed (copied from a cloud vendor's FAQ) ------
V4_MASTER_SYNC_FAIL = """\
44:M 05 Jun 03:31:06.728 * Starting BGSAVE for SYNC with target: disk
44:M 05 Jun 03:31:06.978 * Background saving started by pid 89
89:C 05 Jun 03:32:08.417 # Error moving temp DB file temp-89.rdb on the final destination 20617.20324.rdb (in server root dir /opt/data/dump): No such file or directory
44:M 05 Jun 03:32:08.698 # Background saving error
44:M 05 Jun 03:32:08.698 # Connection with slave 10.xx.xx.119:<unknown-slave-port> lost.
44:M 05 Jun 03:32:08.698 # SYNC failed. BGSAVE child returned an error
44:M 05 Jun 03:50:24.626 * Slave 10.xx.xx.119:<unknown-slave-port> asks for synchronization
44:M 05 Jun 03:50:24.626 * Full resync requested by slave 10.xx.xx.119:<unknown-slave-port>
44:M 05 Jun 03:50:24.626 * Starting BGSAVE for SYNC with target: disk
44:M 05 Jun 03:50:24.880 * Background saving started by pid 90
90:C 05 Jun 03:51:22.585 * DB saved on disk
90:C 05 Jun 03:51:22.739 * RDB: 280 MB of memory used by copy-on-write
44:M 05 Jun 03:51:23.008 * Background saving terminated with success
44:M 05 Jun 03:51:27.898 * Synchronization with slave 10.xx.xx.119:<unknown-slave-port> succeeded
44:M 05 Jun 03:52:19.531 # Connection with slave client id #317862457 lost.
"""

V4_START = """\
1:C 21 Jan 17:16:28.734 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
1:C 21 Jan 17:16:28.735 # Redis version=4.0.14, bits=64, commit=00000000, modified=0, pid=1, just started
1:C 21 Jan 17:16:28.735 # Warning: no config file specified, using the default config. In order to specify a config file use redis-server /path/to/redis.conf
1:M 21 Jan 17:16:28.737 * Running mode=standalone, port=6379.
1:M 21 Jan 17:16:28.739 # WARNING: The TCP backlog setting of 511 cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of 128.
1:M 21 Jan 17:16:28.739 # Server initialized
1:M 21 Jan 17:16:28.739 # WARNING overcommit_memory is set to 0! Background save may fail under low memory condition. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.
1:M 21 Jan 17:16:28.739 * Ready to accept connections
"""

V4_FORK_FAIL = """\
944:M 03 Apr 16:58:16.213 * Background saving terminated with success
944:M 03 Apr 17:03:17.024 * 10 changes in 300 seconds. Saving...
944:M 03 Apr 17:03:17.024 # Can't save in background: fork: Cannot allocate memory
944:M 03 Apr 17:03:23.037 * 10 changes in 300 seconds. Saving...
944:M 03 Apr 17:03:23.037 # Can't save in background: fork: Cannot allocate memory
"""

V4_SLAVEOF = """\
9463:S 03 Mar 08:41:33.448 * SLAVE OF 10.1.2.3:1234 enabled (user request from 'id=6 addr=10.1.2.9:59054 fd=7 name= age=0 idle=0 flags=N db=0 sub=0 psub=0 multi=-1 qbuf=0 qbuf-free=32768 obl=0 oll=0 omem=0 events=r cmd=slaveof')
9463:S 03 Mar 08:41:35.923 * MASTER <-> SLAVE sync: receiving 44312 bytes from master
9463:M 03 Mar 08:41:37.925 * MASTER MODE enabled (user request from 'id=6 addr=10.1.2.9:59054 fd=7 name= age=4 idle=0 flags=N db=0 sub=0 psub=0 multi=-1 qbuf=0 qbuf-free=32768 obl=0 oll=0 omem=0 events=r cmd=slaveof')
"""

# --- Redis 5.0: the year, and REPLICA wording -----------------------------------------------------
V5_MASTER_SYNC = """\
1:M 17 Nov 2019 16:29:12.606 * Replica 192.168.112.1:6381 asks for synchronization
1:M 17 Nov 2019 16:29:12.606 * Full resync requested by replica 192.168.112.1:6381
1:M 17 Nov 2019 16:29:12.606 * Starting BGSAVE for SYNC with target: disk
1:M 17 Nov 2019 16:29:12.607 * Background saving started by pid 21
21:C 17 Nov 2019 16:29:12.610 * DB saved on disk
21:C 17 Nov 2019 16:29:12.611 * RDB: 0 MB of memory used by copy-on-write
1:M 17 Nov 2019 16:29:12.705 * Background saving terminated with success
1:M 17 Nov 2019 16:29:12.706 * Synchronization with replica 192.168.112.1:6381 succeeded
"""

V5_REPLICA_SYNC = """\
1:S 17 Nov 2019 16:29:12.600 * Connecting to MASTER 192.168.112.1:6380
1:S 17 Nov 2019 16:29:12.601 * MASTER <-> REPLICA sync started
1:S 17 Nov 2019 16:29:12.602 * Non blocking connect for SYNC fired the event.
1:S 17 Nov 2019 16:29:12.603 * Master replied to PING, replication can continue...
1:S 17 Nov 2019 16:29:12.604 * Trying a partial resynchronization (request 8f3a2cd1e0c34e4c6f5c1d3b8e0a1b2c3d4e5f60:1).
1:S 17 Nov 2019 16:29:12.606 * Full resync from master: 1786540a1dc01f327cbde7f52b0d8e0f4cd2c6f0:0
1:S 17 Nov 2019 16:29:12.606 * Discarding previously cached master state.
1:S 17 Nov 2019 16:29:12.706 * MASTER <-> REPLICA sync: receiving 175 bytes from master
1:S 17 Nov 2019 16:29:12.707 * MASTER <-> REPLICA sync: Flushing old data
1:S 17 Nov 2019 16:29:12.707 * MASTER <-> REPLICA sync: Loading DB in memory
1:S 17 Nov 2019 16:29:12.708 * MASTER <-> REPLICA sync: Finished with success
"""

V5_PARTIAL = """\
1:S 20 Nov 2019 08:00:00.100 # Connection with master lost.
1:S 20 Nov 2019 08:00:00.100 * Caching the disconnected master state.
1:S 20 Nov 2019 08:00:01.200 * Connecting to MASTER 192.168.112.1:6380
1:S 20 Nov 2019 08:00:01.200 * MASTER <-> REPLICA sync started
1:S 20 Nov 2019 08:00:01.201 * Non blocking connect for SYNC fired the event.
1:S 20 Nov 2019 08:00:01.202 * Master replied to PING, replication can continue...
1:S 20 Nov 2019 08:00:01.203 * Trying a partial resynchronization (request 1786540a1dc01f327cbde7f52b0d8e0f4cd2c6f0:4521).
1:S 20 Nov 2019 08:00:01.204 * Successful partial resynchronization with master.
1:S 20 Nov 2019 08:00:01.204 * MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.
"""

V5_MASTER_PARTIAL = """\
1:M 20 Nov 2019 08:00:01.203 * Replica 192.168.112.1:6381 asks for synchronization
1:M 20 Nov 2019 08:00:01.203 * Partial resynchronization request from 192.168.112.1:6381 accepted. Sending 120 bytes of backlog starting from offset 4521.
1:M 20 Nov 2019 08:05:00.000 # Disconnecting timedout replica: 192.168.112.1:6381
1:M 20 Nov 2019 08:05:00.000 # Connection with replica 192.168.112.1:6381 lost.
"""

# --- Redis 6.x: a sentinel promoting a replica; REPLICAOF; buffer limits --------------------------
V6_SENTINEL_PROMOTION = """\
77915:S 04 Jan 2021 22:17:28.100 # Connection with master lost.
77915:S 04 Jan 2021 22:17:28.100 * Caching the disconnected master state.
77915:S 04 Jan 2021 22:17:28.650 * Connecting to MASTER 127.0.0.1:6379
77915:S 04 Jan 2021 22:17:28.650 * MASTER <-> REPLICA sync started
77915:S 04 Jan 2021 22:17:28.650 # Error condition on socket for SYNC: Connection refused
77915:M 04 Jan 2021 22:17:59.688 * Discarding previously cached master state.
77915:M 04 Jan 2021 22:17:59.688 # Setting secondary replication ID to fa175885da36016b93aebc78ddd48b269e61b62c, valid up to offset: 2012. New replication ID is 6c5bbb2ecd74a221d96aa223265d068546aeb9e4
77915:M 04 Jan 2021 22:17:59.688 * MASTER MODE enabled (user request from 'id=8 addr=127.0.0.1:58073 fd=9 name=sentinel-54689a03-cmd age=30 idle=0 flags=x db=0 sub=0 psub=0 multi=4 qbuf=188 qbuf-free=32580 obl=45 oll=0 omem=0 events=r cmd=exec user=default')
"""

#: The old master after it came back: sentinel turns it into a replica of the new one.
V6_OLD_MASTER_RETURNS = """\
1:M 04 Jan 2021 22:17:20.000 * Background saving terminated with success
1:C 04 Jan 2021 22:18:40.001 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
1:C 04 Jan 2021 22:18:40.001 # Redis version=6.0.9, bits=64, commit=00000000, modified=0, pid=1, just started
1:C 04 Jan 2021 22:18:40.001 # Configuration loaded
1:M 04 Jan 2021 22:18:40.003 * Running mode=standalone, port=6379.
1:M 04 Jan 2021 22:18:40.004 # Server initialized
1:M 04 Jan 2021 22:18:40.005 * Ready to accept connections
1:S 04 Jan 2021 22:18:50.312 * Before turning into a replica, using my own master parameters to synthesize a cached master: I may be able to synchronize with the new master with just a partial transfer.
1:S 04 Jan 2021 22:18:50.312 * REPLICAOF 127.0.0.1:6380 enabled (user request from 'id=3 addr=127.0.0.1:40110 fd=8 name=sentinel-54689a03-cmd age=10 idle=0 flags=x db=0 sub=0 psub=0 multi=4 qbuf=196 qbuf-free=32572 argv-mem=4 obl=45 oll=0 omem=0 tot-mem=61468 events=r cmd=exec user=default')
1:S 04 Jan 2021 22:18:51.000 * Connecting to MASTER 127.0.0.1:6380
"""

V6_BUFFER_LIMIT = """\
1:M 12 May 2021 14:00:00.001 # Client id=3 addr=10.0.0.7:52544 laddr=10.0.0.5:6379 fd=9 name= age=320 idle=0 flags=S db=0 sub=0 psub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 obl=0 oll=7213 omem=268443240 tot-mem=268443896 events=rw cmd=psync user=default scheduled to be closed ASAP for overcoming of output buffer limits.
1:M 12 May 2021 14:00:00.101 # Client id=88 addr=10.0.0.31:61010 laddr=10.0.0.5:6379 fd=12 name= age=40 idle=0 flags=P db=0 sub=0 psub=1 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 obl=0 oll=2048 omem=33562624 tot-mem=33563288 events=rw cmd=psubscribe user=default scheduled to be closed ASAP for overcoming of output buffer limits.
"""

V6_DISKLESS = """\
1:M 12 May 2021 15:00:00.000 * Replica 10.0.0.7:6379 asks for synchronization
1:M 12 May 2021 15:00:00.000 * Full resync requested by replica 10.0.0.7:6379
1:M 12 May 2021 15:00:00.000 * Starting BGSAVE for SYNC with target: replicas sockets
1:M 12 May 2021 15:00:00.001 * Background RDB transfer started by pid 412
412:C 12 May 2021 15:00:03.500 * RDB: 2 MB of memory used by copy-on-write
1:M 12 May 2021 15:00:03.600 * Background RDB transfer terminated with success
1:M 12 May 2021 15:00:03.600 * Streamed RDB transfer with replica 10.0.0.7:6379 succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming
"""

# --- Redis 7.x: starts, shutdowns through the signal handler, the newer warnings ------------------
V7_START = """\
590672:C 19 Mar 2024 17:51:23.756 # WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. Being disabled, it can also cause failures without low memory condition, see https://github.com/jemalloc/jemalloc/issues/1328. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.
590672:C 19 Mar 2024 17:51:23.756 * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
590672:C 19 Mar 2024 17:51:23.756 * Redis version=7.2.4, bits=64, commit=00000000, modified=0, pid=590672, just started
590672:C 19 Mar 2024 17:51:23.756 * Configuration loaded
590672:M 19 Mar 2024 17:51:23.756 * monotonic clock: POSIX clock_gettime
590672:M 19 Mar 2024 17:51:23.757 * Running mode=standalone, port=6379.
590672:M 19 Mar 2024 17:51:23.757 # Warning: Could not create server TCP listening socket ::1:6379: bind: Cannot assign requested address
590672:M 19 Mar 2024 17:51:23.759 * Server initialized
590672:M 19 Mar 2024 17:51:23.761 * Creating AOF base file appendonly.aof.1.base.rdb on server start
590672:M 19 Mar 2024 17:51:23.762 * Creating AOF incr file appendonly.aof.1.incr.aof on server start
590672:M 19 Mar 2024 17:51:23.762 * Ready to accept connections tcp
590672:M 19 Mar 2024 17:51:23.762 * Ready to accept connections unix
"""

V7_SHUTDOWN = """\
1:M 25 Aug 2025 19:11:32.188 * Done loading RDB, keys loaded: 8, keys expired: 3.
1:M 25 Aug 2025 19:11:32.188 * DB loaded from disk: 0.001 seconds
1:M 25 Aug 2025 19:11:32.188 * Ready to accept connections tcp
1:signal-handler (1756149214) Received SIGTERM scheduling shutdown...
1:M 25 Aug 2025 19:13:34.158 * User requested shutdown...
1:M 25 Aug 2025 19:13:34.158 * Saving the final RDB snapshot before exiting.
1:M 25 Aug 2025 19:13:34.164 * DB saved on disk
1:M 25 Aug 2025 19:13:34.164 # Redis is now ready to exit, bye bye...
"""

V7_SHUTDOWN_FAILED = """\
1:M 02 Feb 2024 09:00:00.000 # User requested shutdown...
1:M 02 Feb 2024 09:00:00.001 * Saving the final RDB snapshot before exiting.
1:M 02 Feb 2024 09:00:00.002 # Failed opening the temp RDB file temp-1.rdb (in server root dir /data) for saving: No space left on device
1:M 02 Feb 2024 09:00:00.002 # Error trying to save the DB, can't exit.
1:M 02 Feb 2024 09:00:00.003 # Errors trying to shut down the server. Check the logs for more information.
"""

V7_SECURITY = """\
1:M 27 Nov 2023 03:05:05.642 # Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. This is likely due to an attacker attempting to use Cross Protocol Scripting to compromise your Redis instance. Connection aborted.
"""

V7_AOF = """\
1:M 10 Jan 2024 12:00:00.000 * Background append only file rewriting started by pid 733
1:M 10 Jan 2024 12:00:05.017 * Successfully created the temporary AOF base file temp-rewriteaof-bg-733.aof
733:C 10 Jan 2024 12:00:05.100 * Fork CoW for AOF rewrite: current 1 MB, peak 1 MB, average 1 MB
1:M 10 Jan 2024 12:00:05.200 * Background AOF rewrite terminated with success
1:M 10 Jan 2024 12:00:05.201 * Successfully renamed the temporary AOF base file temp-rewriteaof-bg-733.aof into appendonly.aof.2.base.rdb
1:M 10 Jan 2024 12:00:05.205 * Background AOF rewrite finished successfully
1:M 10 Jan 2024 12:10:00.000 * Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis.
1:M 10 Jan 2024 12:20:00.000 # Can't rewrite append only file in background: fork: Cannot allocate memory
1:M 10 Jan 2024 12:30:00.000 * Background append only file rewriting started by pid 801
1:M 10 Jan 2024 12:30:02.000 # Background AOF rewrite terminated by signal 9
1:M 10 Jan 2024 12:40:00.000 # Error writing to the AOF file: No space left on device
"""

V7_BGSAVE_KILLED = """\
1:M 10 Jan 2024 13:00:00.000 * 100 changes in 300 seconds. Saving...
1:M 10 Jan 2024 13:00:00.001 * Background saving started by pid 901
1:M 10 Jan 2024 13:00:09.000 # Background saving terminated by signal 9
"""

V7_OOM = """\
1:M 10 Jan 2024 14:00:00.000 # Out Of Memory allocating 1048576 bytes!
1:M 10 Jan 2024 14:00:00.000 # ------------------------------------------------
1:M 10 Jan 2024 14:00:00.000 # !!! Software Failure. Press left mouse button to continue
1:M 10 Jan 2024 14:00:00.000 # Guru Meditation: Redis aborting for OUT OF MEMORY. Allocating 1048576 bytes! #server.c:6725
"""

V7_ASSERT = """\
1:M 10 Jan 2024 15:00:00.000 # === ASSERTION FAILED ===
1:M 10 Jan 2024 15:00:00.000 # ==> networking.c:2108 'c->bufpos == 0' is not true
"""

V7_CONFIG = """\
1:M 10 Jan 2024 16:00:00.000 # WARNING: the new maxmemory value set via CONFIG SET (104857600) is smaller than the current memory usage (209715200). This will result in key eviction and/or the inability to accept new write commands depending on the maxmemory-policy.
1:M 10 Jan 2024 16:00:00.001 # You requested maxclients of 10000 requiring at least 10032 max file descriptors.
1:M 10 Jan 2024 16:00:00.002 # Server can't set maximum open files to 10032 because of OS error: Operation not permitted.
"""

V7_LOAD_FAILED = """\
1:M 10 Jan 2024 17:00:00.000 * Loading RDB produced by version 7.2.4
1:M 10 Jan 2024 17:00:00.100 # Short read or OOM loading DB. Unrecoverable error, aborting now.
"""

V7_CLUSTER_REPLICA = """\
1:S 10 Jan 2024 18:00:00.000 * Clear FAIL state for node 9bfa5f4cb76442048aff5accd6b1cc58040d078e: master without slots is reachable again.
1:S 10 Jan 2024 18:05:00.000 # Manual failover user request accepted.
1:S 10 Jan 2024 18:05:01.000 # Currently unable to failover: Waiting for votes, but majority still not reached.
"""

#: A master that came back after its replica took over: the cluster demotes it.
V7_CLUSTER_DEMOTED = """\
1:M 10 Jan 2024 18:09:00.000 * Background saving terminated with success
1:M 10 Jan 2024 18:10:00.000 # Configuration change detected. Reconfiguring myself as a replica of edfbcf234110669ba74cd222da26985712470913
1:S 10 Jan 2024 18:10:00.001 * Before turning into a replica, using my own master parameters to synthesize a cached master: I may be able to synchronize with the new master with just a partial transfer.
1:S 10 Jan 2024 18:10:00.001 * Connecting to MASTER 127.0.0.1:7005
1:S 10 Jan 2024 18:10:00.001 * MASTER <-> REPLICA sync started
"""

V7_REPLICA_FAILS = """\
1:S 10 Jan 2024 19:00:00.000 # MASTER timeout: no data nor PING received...
1:S 10 Jan 2024 19:00:00.000 # Connection with master lost.
1:S 10 Jan 2024 19:00:00.001 * Reconnecting to MASTER 10.0.0.1:6379 after failure
1:S 10 Jan 2024 19:00:00.001 * MASTER <-> REPLICA sync started
1:S 10 Jan 2024 19:00:01.000 # Timeout connecting to the MASTER...
1:S 10 Jan 2024 19:00:02.000 # Error reply to PING from master: '-NOAUTH Authentication required.'
1:S 10 Jan 2024 19:00:03.000 # Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value.
"""


def write(path: Path, *texts: str) -> Path:
    """Write sample texts (joined) to ``path``; returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(texts), encoding="utf-8")
    return path


def dcs_name(ip: str, day: date) -> str:
    """The file name DCS gives a replica's day: ``redis_<ip>_<day>.log``."""
    return f"redis_{ip}_{day.isoformat()}.log"


ALL_SAMPLES: Sequence[tuple[str, str, date]] = (
    ("1.x", V1_START, date(2010, 11, 13)),
    ("2.4", V24_MASTER_SYNC, date(2012, 1, 6)),
    ("2.6", V26_SENTINEL, date(2013, 11, 16)),
    ("2.6", V26_CRASH, date(2014, 3, 12)),
    ("2.8", V28_REPLICA_SYNC, date(2015, 8, 24)),
    ("2.8", V28_SIGNAL, date(2016, 11, 21)),
    ("3.2", V32_START, date(2018, 8, 29)),
    ("3.2", V32_FAILOVER_REPLICA, date(2016, 9, 7)),
    ("3.2", V32_FAILOVER_PEERS, date(2016, 9, 7)),
    ("3.2", V32_CRASH, date(2016, 9, 7)),
    ("4.0", V4_MASTER_SYNC_FAIL, date(2020, 6, 5)),
    ("4.0", V4_START, date(2020, 1, 21)),
    ("4.0", V4_FORK_FAIL, date(2019, 4, 3)),
    ("4.0", V4_SLAVEOF, date(2019, 3, 3)),
    ("5.0", V5_MASTER_SYNC, date(2019, 11, 17)),
    ("5.0", V5_REPLICA_SYNC, date(2019, 11, 17)),
    ("5.0", V5_PARTIAL, date(2019, 11, 20)),
    ("5.0", V5_MASTER_PARTIAL, date(2019, 11, 20)),
    ("6.0", V6_SENTINEL_PROMOTION, date(2021, 1, 4)),
    ("6.0", V6_OLD_MASTER_RETURNS, date(2021, 1, 4)),
    ("6.2", V6_BUFFER_LIMIT, date(2021, 5, 12)),
    ("6.2", V6_DISKLESS, date(2021, 5, 12)),
    ("7.2", V7_START, date(2024, 3, 19)),
    ("7.2", V7_SHUTDOWN, date(2025, 8, 25)),
    ("7.2", V7_SHUTDOWN_FAILED, date(2024, 2, 2)),
    ("7.2", V7_SECURITY, date(2023, 11, 27)),
    ("7.2", V7_AOF, date(2024, 1, 10)),
    ("7.2", V7_BGSAVE_KILLED, date(2024, 1, 10)),
    ("7.2", V7_OOM, date(2024, 1, 10)),
    ("7.2", V7_ASSERT, date(2024, 1, 10)),
    ("7.2", V7_CONFIG, date(2024, 1, 10)),
    ("7.2", V7_LOAD_FAILED, date(2024, 1, 10)),
    ("7.2", V7_CLUSTER_REPLICA, date(2024, 1, 10)),
    ("7.2", V7_CLUSTER_DEMOTED, date(2024, 1, 10)),
    ("7.2", V7_REPLICA_FAILS, date(2024, 1, 10)),
)
