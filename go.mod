module github.com/seed-bb9ff1e7/jobq

go 1.25.0

require github.com/google/go-cmp v0.7.0
