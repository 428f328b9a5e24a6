package capture

// Metrics receives capture's measurements; *metrics.Metrics implements it.
// Calls come from the workers' goroutines and must not block.
type Metrics interface {
	// ChangePublished counts a change handed to JetStream.
	ChangePublished(sourceID int64, schema, table string)
	// TransactionStreamed counts a transaction the source streamed before
	// its commit (see pgrepl.ReplicationOptions.Streaming), published once
	// it committed.
	TransactionStreamed(sourceID int64)
	// SlotConfirmed reports the position confirmed to the source's slot
	// and the server's last reported WAL end (0 when not known yet).
	SlotConfirmed(sourceID int64, confirmed, walEnd uint64)
	// Error counts an error of component classified by class.
	Error(component, class string)
}

// nopMetrics records nothing; Config.Metrics defaults to it.
type nopMetrics struct{}

func (nopMetrics) ChangePublished(int64, string, string) {}
func (nopMetrics) TransactionStreamed(int64)             {}
func (nopMetrics) SlotConfirmed(int64, uint64, uint64)   {}
func (nopMetrics) Error(string, string)                  {}
