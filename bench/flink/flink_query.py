"""Runs one Nexmark query (the reference Flink SQL of `crates/streamcore-nexmark/reference/queries.md`) in
PyFlink over a JSON-lines file in the Flink benchmark's nested layout, and writes the result
rows as CSV in the column order of the query's sink table.

Updating queries (UPDATING) are written as a changelog (`debezium-json` through the filesystem
sink) and applied to a multiset: the CSV holds their final table. With `--blackhole` the rows go
to Flink's blackhole sink instead (as in the Nexmark benchmark) and nothing is written: for
measuring.

Usage: flink_query.py --query q1 --input events.jsonl (--output flink_q1.csv | --blackhole)
                      [--parallelism 1]
Prints `elapsed_s=<job seconds> cpu_s=<CPU seconds of the Flink JVM during the job>
peak_mb=<its peak resident set> rows=<result rows>` on stdout. Both times cover planning, job
submission and the job (`execute_insert(..).wait()`), not the JVM start-up.
"""
import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from collections import Counter

from pyflink.table import EnvironmentSettings, TableEnvironment

SOURCE_DDL = """
CREATE TABLE nexmark (
    event_type INT,
    person ROW<id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, city VARCHAR,
               state VARCHAR, `dateTime` TIMESTAMP(3), extra VARCHAR>,
    auction ROW<id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, reserve BIGINT,
                `dateTime` TIMESTAMP(3), expires TIMESTAMP(3), seller BIGINT, category BIGINT, extra VARCHAR>,
    bid ROW<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
            `dateTime` TIMESTAMP(3), extra VARCHAR>,
    `dateTime` AS CASE WHEN event_type = 0 THEN person.`dateTime`
                       WHEN event_type = 1 THEN auction.`dateTime`
                       ELSE bid.`dateTime` END,
    WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND
) WITH (
    'connector' = 'filesystem',
    'path' = '{path}',
    'format' = 'json',
    'json.timestamp-format.standard' = 'SQL',
    'json.ignore-parse-errors' = 'false'
)
"""

VIEWS = [
    """CREATE VIEW person AS SELECT person.id, person.name, person.emailAddress, person.creditCard,
       person.city, person.state, `dateTime`, person.extra FROM nexmark WHERE event_type = 0""",
    """CREATE VIEW auction AS SELECT auction.id, auction.itemName, auction.description, auction.initialBid,
       auction.reserve, `dateTime`, auction.expires, auction.seller, auction.category, auction.extra
       FROM nexmark WHERE event_type = 1""",
    """CREATE VIEW bid AS SELECT bid.auction, bid.bidder, bid.price, bid.channel, bid.url, `dateTime`,
       bid.extra FROM nexmark WHERE event_type = 2""",
]

# The twelve counts of q15 and q16.
COUNTS = """count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     count(distinct bidder) AS total_bidders,
     count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
     count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
     count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
     count(distinct auction) AS total_auctions,
     count(distinct auction) filter (where price < 10000) AS rank1_auctions,
     count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
     count(distinct auction) filter (where price >= 1000000) AS rank3_auctions"""

# The SELECT of each query's INSERT, with the sink table's column names (positional, as INSERT
# assigns them: q7's SELECT order differs from its sink's names, see PITFALLS).
QUERIES = {
    "q0": (["auction", "bidder", "price", "dateTime", "extra"],
           "SELECT auction, bidder, price, `dateTime`, extra FROM bid"),
    "q1": (["auction", "bidder", "price", "dateTime", "extra"],
           "SELECT auction, bidder, 0.908 * price AS price, `dateTime`, extra FROM bid"),
    "q2": (["auction", "price"],
           "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0"),
    "q3": (["name", "city", "state", "id"],
           """SELECT P.name, P.city, P.state, A.id FROM auction AS A INNER JOIN person AS P
              ON A.seller = P.id
              WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')"""),
    # The reference SQL selects (auction, price, bidder) into a sink declared (auction,
    # bidder, price): the values land in the wrong columns (crates/streamcore-nexmark/reference/pitfalls.md #2, nexmark/nexmark#61).
    # Compared here with the columns where the sink's names say, as streamcore writes them.
    "q7": (["auction", "bidder", "price", "dateTime", "extra"],
           """SELECT B.auction, B.bidder, B.price, B.`dateTime`, B.extra FROM bid B
              JOIN (SELECT MAX(price) AS maxprice, window_end AS `dateTime`
                    FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                    GROUP BY window_start, window_end) B1
              ON B.price = B1.maxprice
              WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND AND B1.`dateTime`"""),
    "q8": (["id", "name", "stime"],
           """SELECT P.id, P.name, P.starttime FROM (
                SELECT id, name, window_start AS starttime, window_end AS endtime
                FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                GROUP BY id, name, window_start, window_end) P
              JOIN (
                SELECT seller, window_start AS starttime, window_end AS endtime
                FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
                GROUP BY seller, window_start, window_end) A
              ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime"""),
    "q11": (["bidder", "bid_count", "starttime", "endtime"],
            """SELECT B.bidder, COUNT(*) AS bid_count,
                      SESSION_START(B.`dateTime`, INTERVAL '10' SECOND) AS starttime,
                      SESSION_END(B.`dateTime`, INTERVAL '10' SECOND) AS endtime
               FROM bid B GROUP BY B.bidder, SESSION(B.`dateTime`, INTERVAL '10' SECOND)"""),
    # count_char(extra, 'c') as a SQL expression instead of the Java UDF.
    "q14": (["auction", "bidder", "price", "bidTimeType", "dateTime", "extra", "c_counts"],
            """SELECT auction, bidder, 0.908 * price AS price,
                      CASE WHEN HOUR(`dateTime`) >= 8 AND HOUR(`dateTime`) <= 18 THEN 'dayTime'
                           WHEN HOUR(`dateTime`) <= 6 OR HOUR(`dateTime`) >= 20 THEN 'nightTime'
                           ELSE 'otherTime' END AS bidTimeType,
                      `dateTime`, extra,
                      CAST(CHAR_LENGTH(extra) - CHAR_LENGTH(REPLACE(extra, 'c', '')) AS BIGINT) AS c_counts
               FROM bid WHERE 0.908 * price > 1000000 AND 0.908 * price < 50000000"""),
    "q22": (["auction", "bidder", "price", "channel", "dir1", "dir2", "dir3"],
            """SELECT auction, bidder, price, channel, SPLIT_INDEX(url, '/', 3) AS dir1,
                      SPLIT_INDEX(url, '/', 4) AS dir2, SPLIT_INDEX(url, '/', 5) AS dir3 FROM bid"""),
    # Updating queries: the final table is the changelog applied (see UPDATING).
    "q4": (["id", "final"],
           """SELECT Q.category, AVG(Q.final) FROM (
                SELECT MAX(B.price) AS final, A.category
                FROM auction A, bid B
                WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
                GROUP BY A.id, A.category) Q
              GROUP BY Q.category"""),
    "q5": (["auction", "num"],
           """SELECT AuctionBids.auction, AuctionBids.num FROM (
                SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
                FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                GROUP BY auction, window_start, window_end) AS AuctionBids
              JOIN (
                SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime FROM (
                  SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
                  FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
                  GROUP BY auction, window_start, window_end) AS CountBids
                GROUP BY CountBids.starttime, CountBids.endtime) AS MaxBids
              ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.endtime = MaxBids.endtime
                 AND AuctionBids.num >= MaxBids.maxn"""),
    # Not runnable in Flink 1.20: an OVER window over the retracting top-1 (FLINK-19059).
    "q6": (["seller", "avg_price"],
           """SELECT Q.seller, AVG(Q.price) OVER
                (PARTITION BY Q.seller ORDER BY Q.`dateTime` ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
              FROM (
                SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) AS rownum
                FROM (SELECT A.id, A.seller, B.price, B.`dateTime` FROM auction AS A, bid AS B
                      WHERE A.id = B.auction and B.`dateTime` between A.`dateTime` and A.expires)
                WHERE rownum <= 1) AS Q"""),
    "q9": (["id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller",
            "category", "extra", "auction", "bidder", "price", "bid_dateTime", "bid_extra"],
           """SELECT id, itemName, description, initialBid, reserve, `dateTime`, expires, seller, category,
                     extra, auction, bidder, price, bid_dateTime, bid_extra
              FROM (
                SELECT A.*, B.auction, B.bidder, B.price, B.`dateTime` AS bid_dateTime, B.extra AS bid_extra,
                  ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.`dateTime` ASC) AS rownum
                FROM auction A, bid B
                WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires)
              WHERE rownum <= 1"""),
    # The projection of q10, without its partitioned filesystem sink (like streamcore's q10).
    "q10": (["auction", "bidder", "price", "dateTime", "extra", "dt", "hm"],
            """SELECT auction, bidder, price, `dateTime`, extra, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd'),
                      DATE_FORMAT(`dateTime`, 'HH:mm') FROM bid"""),
    # The side table is the 10,000-row file `i,i` of nexmark's SideInputGenerator (written
    # next to the output); the lookup join is on processing time but the table is static.
    "q13": (["auction", "bidder", "price", "dateTime", "value"],
            """SELECT B.auction, B.bidder, B.price, B.`dateTime`, S.`value`
               FROM (SELECT *, PROCTIME() AS p_time FROM bid) B
               JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
               ON mod(B.auction, 10000) = S.key"""),
    "q15": (["day", "total_bids", "rank1_bids", "rank2_bids", "rank3_bids", "total_bidders",
             "rank1_bidders", "rank2_bidders", "rank3_bidders", "total_auctions", "rank1_auctions",
             "rank2_auctions", "rank3_auctions"],
            f"""SELECT DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') AS `day`, {COUNTS}
                FROM bid GROUP BY DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')"""),
    "q16": (["channel", "day", "minute", "total_bids", "rank1_bids", "rank2_bids", "rank3_bids",
             "total_bidders", "rank1_bidders", "rank2_bidders", "rank3_bidders", "total_auctions",
             "rank1_auctions", "rank2_auctions", "rank3_auctions"],
            f"""SELECT channel, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') AS `day`,
                       max(DATE_FORMAT(`dateTime`, 'HH:mm')) AS `minute`, {COUNTS}
                FROM bid GROUP BY channel, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')"""),
    "q17": (["auction", "day", "total_bids", "rank1_bids", "rank2_bids", "rank3_bids", "min_price",
             "max_price", "avg_price", "sum_price"],
            """SELECT auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd') AS `day`, count(*) AS total_bids,
                      count(*) filter (where price < 10000) AS rank1_bids,
                      count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
                      count(*) filter (where price >= 1000000) AS rank3_bids,
                      min(price) AS min_price, max(price) AS max_price, avg(price) AS avg_price,
                      sum(price) AS sum_price
               FROM bid GROUP BY auction, DATE_FORMAT(`dateTime`, 'yyyy-MM-dd')"""),
    "q18": (["auction", "bidder", "price", "channel", "url", "dateTime", "extra"],
            """SELECT auction, bidder, price, channel, url, `dateTime`, extra
               FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY `dateTime` DESC)
                     AS rank_number FROM bid)
               WHERE rank_number <= 1"""),
    "q19": (["auction", "bidder", "price", "channel", "url", "dateTime", "extra", "rank_number"],
            """SELECT * FROM
               (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
               WHERE rank_number <= 10"""),
    "q20": (["auction", "bidder", "price", "channel", "url", "bid_dateTime", "bid_extra", "itemName",
             "description", "initialBid", "reserve", "auction_dateTime", "expires", "seller", "category",
             "auction_extra"],
            """SELECT auction, bidder, price, channel, url, B.`dateTime`, B.extra, itemName, description,
                      initialBid, reserve, A.`dateTime`, expires, seller, category, A.extra
               FROM bid AS B INNER JOIN auction AS A on B.auction = A.id
               WHERE A.category = 10"""),
    "q21": (["auction", "bidder", "price", "channel", "channel_id"],
            """SELECT auction, bidder, price, channel,
                      CASE WHEN lower(channel) = 'apple' THEN '0'
                           WHEN lower(channel) = 'google' THEN '1'
                           WHEN lower(channel) = 'facebook' THEN '2'
                           WHEN lower(channel) = 'baidu' THEN '3'
                           ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) END AS channel_id
               FROM bid
               WHERE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) is not null or
                     lower(channel) in ('apple', 'google', 'facebook', 'baidu')"""),
}


# Queries whose result is a changelog (updates and deletes): Flink writes it through the
# filesystem sink in the `debezium-json` format (the changelog in Java, without a Python
# round trip per row), and the final table is that changelog applied to a multiset.
UPDATING = {"q4", "q6", "q9", "q15", "q16", "q17", "q18", "q19"}


def jvm_pids():
    """The Flink JVM: every descendant process of this Python process (PyFlink starts the
    gateway JVM, which runs the local mini-cluster, as a child)."""
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(pid))
    out, todo = [], [os.getpid()]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids):
    """User + system CPU seconds of the processes `pids` so far."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pids):
    """Sum of the peak resident set sizes (VmHWM) of `pids`, MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def part_files(out_dir):
    for root, _, files in os.walk(out_dir):
        for name in sorted(files):
            if not (name.startswith(".") or name.endswith(".crc")):
                yield os.path.join(root, name)


def apply_changelog(out_dir, columns):
    """The final table of the debezium-json changelog in `out_dir`: rows with multiplicity."""
    table = Counter()
    changes = 0
    for path in part_files(out_dir):
        with open(path) as part:
            for line in part:
                if not line.strip():
                    continue
                change = json.loads(line)
                changes += 1
                # INSERT and UPDATE_AFTER are written as "c" with `after`, UPDATE_BEFORE and
                # DELETE as "d" with `before`.
                if change["op"] == "d":
                    row, sign = change["before"], -1
                else:
                    row, sign = change["after"], 1
                table[tuple(csv_cell(row[c]) for c in columns)] += sign
    negative = [r for r, n in table.items() if n < 0]
    if negative:
        raise SystemExit(f"changelog deletes rows it never inserted, e.g. {negative[0]}")
    return table, changes


def csv_cell(value):
    if value is None:
        return ""
    return str(value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--query", required=True, choices=sorted(QUERIES))
    ap.add_argument("--input", required=True)
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--output")
    out.add_argument("--blackhole", action="store_true")
    ap.add_argument("--parallelism", type=int, default=1)
    args = ap.parse_args()
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", str(args.parallelism))
    env.execute_sql(SOURCE_DDL.format(path=args.input))
    for v in VIEWS:
        env.execute_sql(v)
    scratch = tempfile.mkdtemp(prefix=f"flink_{args.query}_")
    if args.query == "q13":
        # nexmark's SideInputGenerator: 10,000 lines `i,i`.
        side = os.path.join(scratch, "side_input")
        os.makedirs(side)
        with open(os.path.join(side, "side_input.txt"), "w") as f:
            f.writelines(f"{i},{i}\n" for i in range(10_000))
        # The legacy descriptor, as nexmark's q13.sql: its CSV source is a lookup source.
        env.execute_sql(
            f"CREATE TABLE side_input (key BIGINT, `value` VARCHAR) WITH ("
            f"'connector.type' = 'filesystem', "
            f"'connector.path' = 'file://{side}/side_input.txt', 'format.type' = 'csv')"
        )
    columns, select = QUERIES[args.query]
    updating = args.query in UPDATING
    table = env.sql_query(select)
    # Results go to a filesystem sink inside Flink (collecting rows through Python would
    # measure the Python bridge, not Flink); the part files are merged afterwards.
    # Column types from the Java side (PyFlink's str() of a DataType drops precision), without
    # the time-attribute markers a sink cannot declare.
    java_types = table._j_table.getResolvedSchema().getColumnDataTypes()
    types = [str(java_types.get(i).toString()).replace(" *ROWTIME*", "").replace(" *PROCTIME*", "")
             for i in range(java_types.size())]
    fields = ", ".join(f"`{c}` {t}" for c, t in zip(columns, types))
    out_dir = os.path.join(scratch, "out")
    if args.blackhole:
        env.execute_sql(f"CREATE TABLE sink ({fields}) WITH ('connector' = 'blackhole')")
    elif updating:
        fmt = ("'format' = 'debezium-json', 'debezium-json.timestamp-format.standard' = 'SQL', "
               "'debezium-json.encode.decimal-as-plain-number' = 'true'")
    else:
        fmt = "'format' = 'csv'"
    if not args.blackhole:
        env.execute_sql(
            f"CREATE TABLE sink ({fields}) WITH ('connector' = 'filesystem', 'path' = '{out_dir}', {fmt})"
        )
    pids = jvm_pids()
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    table.execute_insert("sink").wait()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before
    peak = peak_rss_mb(pids)
    changes = None
    if args.blackhole:
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"elapsed_s={elapsed:.3f} cpu_s={cpu:.2f} peak_mb={peak:.0f}")
        return
    with open(args.output, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        if updating:
            final, changes = apply_changelog(out_dir, columns)
            rows = sum(final.values())
            for row, n in final.items():
                for _ in range(n):
                    w.writerow(row)
        else:
            rows = 0
            for path in part_files(out_dir):
                with open(path, newline="") as part:
                    for row in csv.reader(part):
                        w.writerow(row)
                        rows += 1
    if os.environ.get("KEEP_FLINK_OUTPUT"):
        print(f"flink part files kept in {out_dir}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    extra = f" changes={changes}" if changes is not None else ""
    print(f"elapsed_s={elapsed:.3f} cpu_s={cpu:.2f} peak_mb={peak:.0f} rows={rows}{extra}")


if __name__ == "__main__":
    main()
