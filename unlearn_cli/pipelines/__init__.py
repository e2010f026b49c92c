"""What each CLI verb runs: recipe in, work done, results saved. One module per verb."""
