-- completion: completion rate and where viewers stop, per title, over the
-- windows in [from, to). dropoff counts stops before the end by decile of
-- the title's duration; peak_dropoff names the decile with the most.
-- Titles without a start in the period are left out.
SELECT
    title_id,
    starts,
    completes,
    if(starts = 0, 0, completes / starts) AS completion_rate,
    arraySum(dropoff) AS abandons,
    if(starts = 0, 0, abandons / starts) AS abandon_rate,
    dropoff,
    if(abandons = 0, '',
        concat(toString(indexOf(dropoff, arrayReduce('max', dropoff)) * 10 - 10), '-',
               toString(indexOf(dropoff, arrayReduce('max', dropoff)) * 10), '%')) AS peak_dropoff
FROM
(
    SELECT title_id, sum(s) AS starts, sum(c) AS completes, sumForEach(d) AS dropoff
    FROM
    (
        SELECT title_id, starts AS s, completes AS c, dropoff AS d
        FROM playback_minute FINAL
        WHERE window_start >= @from AND window_start < @to
        {{- if .has_country}} AND country = @country{{end}}
        {{- if .has_title}} AND title_id = @title{{end}}
    )
    GROUP BY title_id
)
WHERE starts > 0
ORDER BY starts DESC, title_id
LIMIT @limit
