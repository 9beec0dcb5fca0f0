package ledger

import "time"

// Period is a budget's calendar period, in UTC.
type Period string

// Periods. PeriodNone never resets.
const (
	PeriodDay   Period = "day"
	PeriodWeek  Period = "week"
	PeriodMonth Period = "month"
	PeriodNone  Period = "none"
)

// ParsePeriod checks a period name.
func ParsePeriod(s string) (Period, error) {
	switch p := Period(s); p {
	case PeriodDay, PeriodWeek, PeriodMonth, PeriodNone:
		return p, nil
	}
	return "", invalid("period %q is not one of day, week, month, none", truncate(s, 16))
}

// Start returns the start of the period containing t. For PeriodNone the
// period started when the budget did (since), which is returned unchanged.
func (p Period) Start(t, since time.Time) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	switch p {
	case PeriodDay:
		return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	case PeriodWeek:
		// ISO weeks start on Monday.
		back := (int(t.Weekday()) + 6) % 7
		return time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC)
	case PeriodMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	}
	return since
}

// End returns the end of the period that starts at start; the zero time for
// PeriodNone.
func (p Period) End(start time.Time) time.Time {
	switch p {
	case PeriodDay:
		return start.AddDate(0, 0, 1)
	case PeriodWeek:
		return start.AddDate(0, 0, 7)
	case PeriodMonth:
		return start.AddDate(0, 1, 0)
	}
	return time.Time{}
}

// phrase is how messages name the period: "in this month".
func (p Period) phrase() string {
	switch p {
	case PeriodDay:
		return "today"
	case PeriodWeek:
		return "in this week"
	case PeriodMonth:
		return "in this month"
	}
	return "in total"
}
