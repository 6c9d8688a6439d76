import { Settings } from 'luxon';

export { DateTime, Duration } from 'luxon';

// convey does calendar arithmetic with luxon (durations, week minutes, days in a zone) and formats
// nothing through it, so the locale is never seen. Left unset, luxon's first Duration asks Intl
// for the system locale, which maps ICU's data: 6 MB of a run's resident memory for nothing.
Settings.defaultLocale = 'en-US';
