package experiment

// The thesis's numbers, transcribed from the text of Ellore, "Rethinking
// Serverless for Machine Learning Inference" (Virginia Tech, 2023). Its
// figures are images; where a figure's values are not stated in the text, the
// table quotes what the text says about it.

// thesisTable41 is Table 4.1, "Comparing FaaS characteristics of CNN and
// BERT". Its "BERT" row has VGG16's parameter count (Fig 4.3 is VGG16's
// layer summary), so our VGG16 is its size match.
var thesisTable41 = Table{
	Caption: "Thesis Table 4.1: FaaS characteristics of CNN and BERT (its 'BERT' is VGG16-sized: Fig 4.3 lists VGG16's layers).",
	Header:  []string{"workload", "model", "size on disk", "parameters", "function memory", "docker image"},
	Rows: [][]string{
		{"Name Classification", "CNN", "80 KB", "21,840", "145 M", "2.91 G"},
		{"Text Classification", "BERT", "527.79 MB", "138,357,544", "1103 M", "4.3 G"},
	},
}

// thesisTable42 is Table 4.2, model load times in seconds.
var thesisTable42 = Table{
	Caption: "Thesis Table 4.2: model load time (seconds) with no optimization, single copy and zero copy (Ray; Fig 4.6 plots the same).",
	Header:  []string{"model", "no optimization", "single copy", "zero copy", "no opt. / zero copy"},
	Rows: [][]string{
		{"BERT", "1.83", "0.134", "0.06835", "27x"},
		{"BigBird", "1.8", "0.176", "0.006531", "276x"},
		{"GPT2", "1.54", "0.244", "0.008338", "185x"},
	},
}

// thesisTable43 is Table 4.3, the breakdown of cold and warm requests
// (OpenFaaS on Kubernetes), transcribed as printed, its repeated CNN row and
// warm rows whose parts exceed their totals included.
var thesisTable43 = Table{
	Caption: "Thesis Table 4.3: breakdown of inference time for CNN and BERT, cold and warm (ms; as printed). The text adds: function boot takes about 3.5 s for the CNN and 7 s for BERT.",
	Header:  []string{"model", "start", "input size", "paragraphs", "total ms", "model load ms", "inference ms"},
	Rows: [][]string{
		{"CNN", "cold", "10B", "<1", "3500", "2", "4"},
		{"CNN", "warm", "10B", "<1", "14", "2", "4"},
		{"CNN", "warm", "1KB", "3", "187", "2", "174"},
		{"CNN", "warm", "10KB", "30", "1035", "2", "1020"},
		{"CNN", "warm", "36KB", "100", "4742", "3", "4732"},
		{"CNN", "warm", "36KB", "100", "4742", "3", "122262"},
		{"Bert", "cold", "10B", "<1", "8140", "2690", "1547"},
		{"Bert", "warm", "10B", "<1", "2636", "2487", "2622"},
		{"Bert", "warm", "36KB", "100", "2219", "2487", "2188"},
		{"Bert", "warm", "332KB", "1000", "4390", "2487", "4375"},
		{"Bert", "warm", "3.2MB", "10000", "27022", "2487", "27022"},
	},
}

// thesisFig45 is what the text says of Fig 4.5.
var thesisFig45 = Table{
	Caption: "Thesis Fig 4.5 (memory of the BERT function from boot to inference), as described in the text.",
	Header:  []string{"claim", "value"},
	Rows: [][]string{
		{"memory during model load", "spikes, then falls once the load completes (a noisy-neighbour risk)"},
		{"function memory (Table 4.1)", "CNN 145 MB, BERT 1103 MB"},
		{"with zero copy", "no spike: lower peak memory (ch. 4, on Table 4.2)"},
	},
}

// thesisFig53and56 is what the text says of Figs 5.3 and 5.6.
var thesisFig53and56 = Table{
	Caption: "Thesis Figs 5.3 and 5.6 (C++ thread-pool server), as described in the text.",
	Header:  []string{"figure", "claim"},
	Rows: [][]string{
		{"5.3", "memory stays about constant from 1 to 100 concurrent requests (apache-bench): the model is shared and per-request buffers are small"},
		{"5.6", "one ML inference request takes about 200 ms, one CPU-intensive request about 500 ms"},
		{"5.6", "latency CDFs at 5, 10, 30 and 50 concurrent requests: both workloads 'scale quite well'"},
	},
}

// thesisCh6 is the setup and outcome of chapter 6 (Figs 6.1-6.3).
var thesisCh6 = Table{
	Caption: "Thesis chapter 6 (Figs 6.1-6.3): setup and outcome as stated in the text.",
	Header:  []string{"item", "thesis"},
	Rows: [][]string{
		{"machine", "single-node Kubernetes, 64-core CPU, 187 GiB"},
		{"pod size", "1 vCPU"},
		{"policy", "every 5 s, if p99 > 500 ms, double: vCPUs (hybrid) or pods (HPA): 1, 2, 4, 8, 16, 32, 56"},
		{"load (Fig 6.3)", "Locust, 1 user + 2 users/s up to 100 users, each waiting 2-3 s between requests, for a few minutes"},
		{"model", "BERT"},
		{"memory (Fig 6.1)", "HPA ends with 56 pods, each with its own model copy; hybrid ends with one instance at 56 vCPUs"},
		{"latency (Fig 6.2)", "hybrid beats HPA from p80 to p100; hybrid is slower than bare metal with 56 vCPUs because it reaches 56 vCPUs only after 30 s"},
	},
}
