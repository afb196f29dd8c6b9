package jetstream_test

const childEnv = "JOBQ_JETSTREAM_CHILD"

func runChild(role string) int { return 2 }
