-- quality: streaming quality per CDN × ISP (× country with --by-country or
-- --country; × time bucket with --bucket, buckets aligned to from) over the
-- windows in [from, to). Rates are per session: the quality rows count
-- sessions, not watch time, so the rebuffer ratio is rebuffers per session
-- (and stalled seconds per session), not stalled time over watch time.
SELECT
    {{- if .bucket}}
    bucket,
    {{- end}}
    cdn,
    isp,
    {{- if or .by_country .has_country}}
    country,
    {{- end}}
    sessions,
    rebuffers,
    if(sessions = 0, 0, rebuffers / sessions) AS rebuffers_per_session,
    if(sessions = 0, 0, rebuffer_ms / 1000 / sessions) AS rebuffer_s_per_session,
    start_failures,
    if(sessions = 0, 0, start_failures / sessions) AS start_failure_rate,
    errors,
    if(sessions = 0, 0, errors / sessions) AS error_rate,
    if(bitrate_samples = 0, 0, bitrate_sum / bitrate_samples) AS mean_bitrate_kbps
FROM
(
    SELECT
        {{- if .bucket}}
        toDateTime(toUInt32(@from) + intDiv(toUInt32(ws) - toUInt32(@from), @bucket) * @bucket) AS bucket,
        {{- end}}
        cdn,
        isp,
        {{- if or .by_country .has_country}}
        country,
        {{- end}}
        sum(se) AS sessions,
        sum(rb) AS rebuffers,
        sum(rbms) AS rebuffer_ms,
        sum(sf) AS start_failures,
        sum(er) AS errors,
        sum(bs) AS bitrate_sum,
        sum(bn) AS bitrate_samples
    FROM
    (
        SELECT window_start AS ws, cdn, isp, country, sessions AS se, rebuffers AS rb, rebuffer_ms AS rbms,
               start_failures AS sf, errors AS er, bitrate_sum AS bs, bitrate_samples AS bn
        FROM quality_minute FINAL
        WHERE window_start >= @from AND window_start < @to
        {{- if .has_country}} AND country = @country{{end}}
    )
    GROUP BY {{if .bucket}}bucket, {{end}}cdn, isp{{if or .by_country .has_country}}, country{{end}}
)
ORDER BY {{if .bucket}}bucket, {{end}}sessions DESC, cdn, isp{{if or .by_country .has_country}}, country{{end}}
LIMIT @limit{{if .bucket}} BY bucket{{end}}
