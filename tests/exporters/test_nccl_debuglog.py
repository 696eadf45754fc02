"""Facts and warnings from NCCL_DEBUG=INFO logs, in NCCL's own line format."""

from __future__ import annotations

from fleetscope.exporters.nccl.collector import NcclCollector
from fleetscope.exporters.nccl.debuglog import warning_category
from tests.support.exposition import render, samples, value, values

# Lines as NCCL 2.2x writes them for rank 0 of a 16-rank, 2-node job, with the program's own
# output and another communicator's set-up on another thread interleaved.
LOG = """\
node-a:1234:1234 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>
node-a:1234:1234 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/IB [1]mlx5_1:1/IB ; OOB eth0:10.0.0.1<0>
node-a:1234:1234 [0] NCCL INFO Using network IB
node-a:1234:1234 [0] NCCL INFO ncclCommInitRank comm 0x55d1c2c0 rank 0 nranks 16 cudaDev 0 nvmlDev 0 busId 18000 commId 0x7f8c496ae9f661 - Init START
epoch 1 step 10 loss 2.31
node-a:1234:1234 [0] NCCL INFO Channel 00/32 :    0   1   2   3   4   5   6   7   8   9  10  11  12  13  14  15
node-a:1234:1234 [0] NCCL INFO Trees [0] 1/8/-1->0->-1 [1] 1/-1/-1->0->8
node-a:1234:1234 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM/read
node-a:1234:1240 [0] NCCL INFO ncclCommInitRank comm 0x66aa0000 rank 0 nranks 8 cudaDev 0 nvmlDev 0 busId 18000 commId 0x3ab9e0c4d2f17e02 - Init START
node-a:1234:1240 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM/read
node-a:1234:1234 [0] NCCL INFO Channel 00/0 : 15[7] -> 0[0] [receive] via NET/IB/0/GDRDMA
node-a:1234:1234 [0] NCCL INFO 32 coll channels, 32 collnet channels, 0 nvls channels, 32 p2p channels, 32 p2p channels per peer
node-a:1234:1234 [0] NCCL INFO ncclCommInitRank comm 0x55d1c2c0 rank 0 nranks 16 cudaDev 0 nvmlDev 0 busId 18000 commId 0x7f8c496ae9f661 localSize 8 - Init COMPLETE
node-a:1234:1234 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[1] via SHM/direct/direct
node-a:1234:5678 [0] transport/net_ib.cc:1696 NCCL WARN NET/IB : Got completion from peer 10.0.0.2<34567> with status=12 opcode=0 len=0 vendor err 129 (Recv)
node-a:1234:5678 [0] enqueue.cc:1500 NCCL WARN Cuda failure 'an illegal memory access was encountered'
node-a:1234:5678 [0] NCCL WARN something else happened
"""


def test_communicator_facts_and_warnings_are_read(tmp_path):
    (tmp_path / "nccl.node-a.1234.log").write_text(LOG)
    collector = NcclCollector(tmp_path / "inspector", "node-a", debug_logs=str(tmp_path / "nccl.*.log"))
    text = render(collector.collect())
    comm = {"comm_id": "0x7f8c496ae9f661"}
    transports = {labels["transport"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_comm_transport_info"
                  and labels["comm_id"] == comm["comm_id"]}
    # SHM/direct came after Init COMPLETE, so it is not this communicator's set-up.
    assert transports == {"P2P/CUMEM", "NET/IB"}
    assert {labels["algorithm"] for n, labels, _ in samples(text) if n == "fleetscope_nccl_comm_algorithm_info"
            and labels["comm_id"] == comm["comm_id"]} == {"ring", "tree"}
    assert value(text, "fleetscope_nccl_comm_channels", kind="coll", **comm) == 32
    assert value(text, "fleetscope_nccl_comm_channels", kind="nvls", **comm) == 0
    assert value(text, "fleetscope_nccl_comm_transport_info", comm_id="0x3ab9e0c4d2f17e02") == 1
    assert value(text, "fleetscope_nccl_network_info", network="IB") == 1
    assert value(text, "fleetscope_nccl_warnings_total", category="network") == 1
    assert value(text, "fleetscope_nccl_warnings_total", category="cuda") == 1
    assert value(text, "fleetscope_nccl_warnings_total", category="other") == 1
    # Appended lines are read; the ones already read are not counted again.
    with open(tmp_path / "nccl.node-a.1234.log", "a") as log:
        log.write("node-a:1234:5678 [0] NCCL WARN NET/IB : timeout waiting\n")
    text = render(collector.collect())
    assert value(text, "fleetscope_nccl_warnings_total", category="network") == 2
    collector.close()


def test_without_debug_logs_there_are_no_such_series(tmp_path):
    text = render(NcclCollector(tmp_path, "node-a").collect())
    assert values(text, "fleetscope_nccl_warnings_total") == []


def test_warning_categories():
    assert warning_category("NET/Socket : connect failed") == "network"
    assert warning_category("Cuda failure 'out of memory'") == "cuda"
    assert warning_category("Watchdog caught collective operation timeout") == "timeout"
    assert warning_category("Failed to allocate 1 GiB") == "memory"
    assert warning_category("weird") == "other"


# NCCL 2.29's words (src/init.cc, ncclCommInitRankFunc) for the other ways of making a
# communicator: split and shrink print no commId, only the parent's pointer, childCount and
# color (note "key 0- Init START"); newer NCCL adds the commId to split lines.
PARENT = "0x1a2b3c4d5e6f7081"
OTHER_INITS = f"""\
node-b:2000:2000 [0] NCCL INFO [Rank 0] ncclCommInitAll comm 0x5611aa00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 commId {PARENT} - Init START
node-b:2000:2000 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/CUMEM/read
node-b:2000:2000 [0] NCCL INFO ncclCommInitAll comm 0x5611aa00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 commId {PARENT} - Init COMPLETE
node-b:2000:2001 [0] NCCL INFO ncclCommSplit comm 0x5622bb00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 parent 0x5611aa00 childCount 0 color 7 key 0- Init START
node-b:2000:2001 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via SHM/direct/direct
node-b:2000:2001 [0] NCCL INFO ncclCommSplit comm 0x5622bb00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 parent 0x5611aa00 childCount 0 color 7 key 0 - Init COMPLETE
node-b:2000:2002 [0] NCCL INFO ncclCommShrink comm 0x5633cc00 rank 0 nranks 1 cudaDev 0 nvmlDev 0 busId 18000 parent 0x5611aa00 childCount 1 color 0 key 0- Init START
node-b:2000:2002 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] [send] via NET/Socket/0
node-b:2000:2002 [0] NCCL INFO ncclCommShrink comm 0x5633cc00 rank 0 nranks 1 cudaDev 0 nvmlDev 0 busId 18000 parent 0x5611aa00 childCount 1 color 0 key 0 - Init COMPLETE
node-b:2000:2003 [0] NCCL INFO [Rank 3] ncclCommInitRankScalable comm 0x5644dd00 rank 3 nranks 64 cudaDev 0 nvmlDev 0 busId 18000 commId 0xabcdef0123456789 - Init START
node-b:2000:2003 [0] NCCL INFO Channel 00/0 : 3[0] -> 4[1] [send] via NET/IB/0/GDRDMA
node-b:2000:2003 [0] NCCL INFO ncclCommInitRankScalable comm 0x5644dd00 rank 3 nranks 64 cudaDev 0 nvmlDev 0 busId 18000 commId 0xabcdef0123456789 - Init COMPLETE
node-b:2000:2004 [0] NCCL INFO ncclCommSplit comm 0x5655ee00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 commId 0x77aa55 parent 0x5611aa00 childCount 2 color 3 key 0 - Init START
node-b:2000:2004 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC
node-b:2000:2004 [0] NCCL INFO ncclCommSplit comm 0x5655ee00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 commId 0x77aa55 parent 0x5611aa00 childCount 2 color 3 key 0 - Init COMPLETE
"""


def test_every_way_of_making_a_communicator_is_tied_to_its_transports(tmp_path):
    from fleetscope.exporters.nccl.debuglog import split_comm_id

    (tmp_path / "nccl.node-b.2000.log").write_text(OTHER_INITS)
    collector = NcclCollector(tmp_path / "inspector", "node-b", debug_logs=str(tmp_path / "nccl.*.log"))
    text = render(collector.collect())
    collector.close()
    transports = {labels["comm_id"]: labels["transport"] for n, labels, _ in samples(text)
                  if n == "fleetscope_nccl_comm_transport_info"}
    assert transports == {PARENT: "P2P/CUMEM", split_comm_id(PARENT, 0, 7): "SHM/direct",
                          split_comm_id(PARENT, 1, 0): "NET/Socket", "0xabcdef0123456789": "NET/IB",
                          "0x77aa55": "P2P/IPC"}


def test_a_split_communicators_id_is_derived_as_nccl_derives_it():
    """eatHash(parent hash), eatHash(childCount), eatHash(color), digestHash (src/init.cc). The
    expected ids are what NCCL's own eatHash and digestHash (src/include/utils.h), compiled with gcc
    on x86-64, print for these inputs: they pin the byte layout (8-byte hash, 4-byte ints, little-endian)."""
    from fleetscope.exporters.nccl.debuglog import split_comm_id

    assert split_comm_id(PARENT, 0, 7) == "0x24105369f614bbeb"
    assert split_comm_id(PARENT, 1, 0) == "0x3ca1b8ac136897a1"
    assert split_comm_id(PARENT, 0, 1) == "0xd5728fd109457dea"


def test_older_releases_split_lines_name_the_count_split_count(tmp_path):
    from fleetscope.exporters.nccl.debuglog import split_comm_id

    lines = OTHER_INITS.splitlines()[:3] + [
        "node-b:2000:2001 [0] NCCL INFO ncclCommSplit comm 0x5622bb00 rank 0 nranks 2 cudaDev 0 nvmlDev 0 busId 18000 "
        "parent 0x5611aa00 splitCount 4 color 7 key 0- Init START",
        "node-b:2000:2001 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via SHM/direct/direct"]
    (tmp_path / "nccl.node-b.2000.log").write_text("\n".join(lines) + "\n")
    collector = NcclCollector(tmp_path / "inspector", "node-b", debug_logs=str(tmp_path / "nccl.*.log"))
    text = render(collector.collect())
    collector.close()
    assert value(text, "fleetscope_nccl_comm_transport_info", comm_id=split_comm_id(PARENT, 4, 7)) == 1
